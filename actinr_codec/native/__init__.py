"""The native C kernel shared by fitting and rendering: its sources and ctypes binding."""
