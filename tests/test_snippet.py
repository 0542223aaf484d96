from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from int8lab.predict import predict_images
from int8lab.sidecar import saved_spec
from int8lab.snippet import write_snippet


def test_snippet_predicts_what_int8lab_predicts_without_importing_it(tmp_path, fashion_int8, fashion_dir):
    snippet = write_snippet(fashion_int8.path, tmp_path / "infer.py", saved_spec(fashion_int8.path))
    image = sorted((fashion_dir / "test" / "sneaker").iterdir())[0]
    probe = ("import runpy, sys; snippet = sys.argv[1]; sys.argv = [snippet, sys.argv[2], '--top-k', '2']; "
             "runpy.run_path(snippet, run_name='__main__'); "
             "assert 'int8lab' not in sys.modules and 'tensorflow' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", probe, str(snippet), str(image)],
                         capture_output=True, text=True, check=True)
    path, first, second = out.stdout.strip().split("\t")
    expected = predict_images(fashion_int8.path, [image], saved_spec(fashion_int8.path), top_k=2)[0]["top"]
    assert first == f"{expected[0]['label']}:{expected[0]['score']:.4f}"
    assert second == f"{expected[1]['label']}:{expected[1]['score']:.4f}"


def test_snippet_finds_the_model_relative_to_itself(tmp_path, fashion_int8):
    snippet = write_snippet(fashion_int8.path, tmp_path / "sub" / "infer.py", saved_spec(fashion_int8.path))
    namespace = {"__file__": str(snippet), "__name__": "infer"}
    exec(compile(snippet.read_text(), str(snippet), "exec"), namespace)
    assert Path(namespace["MODEL_PATH"]).resolve() == fashion_int8.path.resolve()
