"""The constitution: one editable file of principles that governs every answer.

`schema` holds the value types, `loader` reads and validates files, `normalize` sees
through jailbreak encodings, `screen` scores text against each harm principle, `stage`
enforces it in the turn pipeline. See docs/constitution.md.
"""
