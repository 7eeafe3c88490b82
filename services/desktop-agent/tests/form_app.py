"""A small Tk form for the desktop tests: a text field, and a magenta button that saves what
the field holds to the file named on the command line (so a test reads back what was typed)."""

from __future__ import annotations

import sys
import tkinter as tk
from pathlib import Path

BUTTON = "#ff00ff"


def main() -> None:
    out = sys.argv[1]
    root = tk.Tk()
    root.title(sys.argv[2] if len(sys.argv) > 2 else "Troika Form")
    root.geometry("420x220+60+80")
    field = tk.Entry(root, width=40, name="field")
    field.pack(pady=12)
    field.focus_set()  # what is typed into the window goes into the field
    button = tk.Canvas(root, width=120, height=40, highlightthickness=0)
    button.create_rectangle(0, 0, 120, 40, fill=BUTTON, outline=BUTTON)
    button.pack(pady=12)

    def save(_: object) -> None:
        Path(out).write_text(field.get(), encoding="utf-8")

    button.bind("<Button-1>", save)
    root.mainloop()


if __name__ == "__main__":
    main()
