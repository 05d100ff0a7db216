"""``vibewatch demo``: the whole system on embedded defaults, one chapter per part of it.

:mod:`vibewatch.demo.story` runs the story, :mod:`vibewatch.demo.cli` is its command.
"""
