"""The command line: parsing and rendering on top of the core; cli.output is the only rich importer."""
