"""User-facing errors. The CLI turns a `WorkbenchError` into one line on stderr and exit code 2."""


class WorkbenchError(Exception):
    """An error caused by the user's input (config, override, run folder, file), with its fix."""

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(f"{message} ({fix})" if fix else message)


class TrainingDiverged(Exception):
    """A loss stopped being finite; the run keeps its last good checkpoint and is marked failed."""

    def __init__(self, message: str, step: int, seeds: list[int] | None = None):
        self.step = step
        self.seeds = seeds or []
        super().__init__(message)
