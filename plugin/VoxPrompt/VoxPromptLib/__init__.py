"""VoxPromptLib: the Slicer-free core of the VoxPrompt Slicer module (ctypes over libvoxprompt + numpy)."""
from .binding import ABI_MAJOR, ABI_MINOR, POLICIES, Library, VoxPromptError, find_library, locate_onnxruntime
from .logic import (PINNED_ONNXRUNTIME, BackgroundRun, Engine, PromptSync, RuntimeMissing, Session, box_of,
                    default_model_dir, dice, library, open_engine, runtime_problem)

__all__ = ["ABI_MAJOR", "ABI_MINOR", "PINNED_ONNXRUNTIME", "POLICIES", "BackgroundRun", "Engine", "Library",
           "PromptSync", "RuntimeMissing", "Session", "VoxPromptError", "box_of", "default_model_dir", "dice",
           "find_library", "library", "locate_onnxruntime", "open_engine", "runtime_problem"]
