"""`python -m ollamactl`: the same entry point as the console script."""

from ollamactl.cli.launcher import main

if __name__ == "__main__":
    main()
