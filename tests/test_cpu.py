"""The CPU named beside latency figures, from /proc/cpuinfo."""

from __future__ import annotations

from int8lab.cpu import cpu_info


def test_an_x86_cpu_with_vnni_is_named_with_its_int8_instructions(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n")
    cpu = cpu_info(info)
    assert cpu.model == "AMD EPYC" and cpu.features == ("AVX2", "FMA", "AVX-512", "AVX-512 VNNI")
    assert cpu.int8_dot_product and "in hardware" in cpu.int8_meaning()


def test_avx2_without_vnni_says_int8_may_not_be_faster(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some Xeon\nflags\t\t: sse2 avx2 fma\n")
    cpu = cpu_info(info)
    assert not cpu.int8_dot_product and "no faster than fp32" in cpu.int8_meaning()


def test_an_arm_cpu_reads_its_features_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU part\t: 0xd0b\n")
    cpu = cpu_info(info)
    assert cpu.features == ("NEON", "dot product", "i8mm") and cpu.int8_dot_product


def test_this_machine_is_described():
    assert cpu_info().describe()
