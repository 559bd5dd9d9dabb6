"""KDA: knowledge-augmented audio-visual zero-shot video classification.

The library is importable without the app; `python -m kda --help` lists the command line.
"""

__version__ = "0.1.0"
