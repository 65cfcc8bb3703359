"""Authoring tools for the book's maintainers (not part of ``course_lib``, which students install).

Run them from the repository root:

- ``python -m tools.student [--check] [chapter ...]``: normalise the chapter notebooks and write
  their student editions.
- ``python -m tools.repository check`` / ``set-repository URL``: keep every copy of the
  repository URL equal to ``_config.yml``'s ``repository.url``; rewrite them all for a fork.
"""
