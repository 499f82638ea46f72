"""`python -m ollamactl`: the same entry point as the console script."""

from ollamactl.entry import main

if __name__ == "__main__":
    main()
