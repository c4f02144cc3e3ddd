from lra_bench.cli import main

main()
