"""The metadata half: read generation metadata from image files, parse it into records,
split prompts into tokens, name the resources used and resolve Civitai references.

Nothing here imports the rating half.
"""
