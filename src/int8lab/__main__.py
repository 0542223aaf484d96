from int8lab.cli import main

main()
