"""`python -m cpuwise ...`: the same command line as the `cpuwise` console script."""

from cpuwise.cli.app import main

if __name__ == "__main__":
    main()
