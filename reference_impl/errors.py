"""The error the command line reports in one sentence, kept free of heavy imports so that a
mistyped command fails at once instead of after loading torch."""


class CourseError(Exception):
    """Something asked of the course that it cannot do; the message says why."""
