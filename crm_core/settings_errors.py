"""Settings errors as one line per problem, fit for a terminal: the variable, what is wrong,
what to do. Never the value given (it may be a password, a key or a URL with a password)."""

from __future__ import annotations

from pydantic import ValidationError

_HINT = "set it in the environment or in .env (see .env.example)"


def describe_settings_error(exc: ValidationError) -> list[str]:
    """One line per validation error, e.g. ``CRM_SMTP_PORT: input should be a valid integer``."""
    lines: list[str] = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        location = [str(part) for part in error.get("loc", ()) if str(part)]
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if location:
            variable = "CRM_" + location[0].upper()
            lines.append(f"{variable}: {message[:1].lower()}{message[1:]}; {_HINT}")
        else:
            # Model-level rules name their variables themselves.
            lines.append(f"settings: {message}")
    return lines
