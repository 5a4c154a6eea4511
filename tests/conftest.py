"""Shared test setup: a headless matplotlib backend and quiet ArviZ imports."""
import os
import warnings

os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
