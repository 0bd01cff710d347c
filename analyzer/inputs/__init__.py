"""The only code that opens files: captures and node dumps -> model objects."""
