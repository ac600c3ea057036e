"""VoxPromptLib: the Slicer-free core of the VoxPrompt Slicer module (ctypes over libvoxprompt + numpy)."""
from .binding import ABI_MAJOR, ABI_MINOR, POLICIES, Library, VoxPromptError, find_library
from .logic import BackgroundRun, Engine, PromptSync, Session, box_of, default_model_dir, dice, library

__all__ = ["ABI_MAJOR", "ABI_MINOR", "POLICIES", "BackgroundRun", "Engine", "Library", "PromptSync", "Session", "VoxPromptError",
           "box_of", "default_model_dir", "dice", "find_library", "library"]
