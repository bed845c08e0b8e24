"""The one exception type a user sees: a sentence that says what is wrong and what to do."""


class OdapiError(Exception):
    """An error caused by the user's input or environment, printed without a traceback.

    `where` names the file (and line or element) at fault when there is one.
    """

    def __init__(self, message: str, where: str | None = None, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.where = where
        self.exit_code = exit_code

    def __reduce__(self):  # whole across processes (measure's worker raises it too)
        return type(self), (self.message, self.where, self.exit_code)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message
