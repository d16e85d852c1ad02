"""The one redaction point: every printed line, JSON document, journal entry and error passes here.

Which values are secret
    The value of an environment variable that a layer declares secret (`Layer.secret_env`), that
    was read from 1Password (`op://` in `.env`), or whose name looks secret (`is_secret_name`);
    and the password of a URL with credentials (`https://user:password@host`) in any variable.
    Values are read from the environment at call time, so a variable loaded from `.env` later is
    still redacted. Values a tool decrypted for this run (Ansible Vault: `add_secret_values`) are
    secret too, for the rest of the process. A value shorter than 4 characters, or a switch word
    (true, false, none, null, enabled, disabled), is never masked: masking "1" or "false" would
    garble every line.

Which forms are masked
    The value itself and its base64 (standard and URL-safe, padded or not, and the part that
    stays the same inside a longer base64 text such as a `Basic user:password` header),
    URL-encoded (`%XX` upper or lower case, `+` for spaces), hex (either case) and JSON-escaped
    forms; for a multi-line value, each of its lines as well.

Streams
    `StreamRedactor` masks text that arrives in pieces (invoke reads a child's output 1000 bytes
    at a time): it holds back only the end of what it was given that could still grow into a
    secret (never more than the longest form), and `finish()` releases it, masked if it is a
    partial secret.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

MASK = "***"
# Values shorter than this are not masked: masking "1" or "on" would garble every line.
_MIN_SECRET_LENGTH = 4
# An encoded form that is only part of the encoding (base64 inside a longer text) must be at
# least this long to be masked; shorter parts say almost nothing and would mask by accident.
_MIN_PARTIAL_FORM = 6

# Switch words are no one's password: SOME_TOKEN=false must not mask every "false".
_NOT_SECRET_VALUES = frozenset({"true", "false", "none", "null", "enabled", "disabled"})

_declared: set[str] = set()
# Secret values that come from no environment variable (Ansible Vault plaintexts), for this process.
# One frozen set, replaced (never mutated) on each addition: a thread reading it is never disturbed.
_added_values: list[frozenset[str]] = [frozenset()]

# --- Which names are secret -------------------------------------------------------------------

# A word (between underscores) that makes a name secret wherever it stands.
_SECRET_WORDS = frozenset(
    {
        "SECRET", "SECRETS", "TOKEN", "TOKENS", "PASSWORD", "PASSWORDS", "PASSWD", "PASSPHRASE",
        "PASS", "PW", "PWD", "PAT", "CREDENTIAL", "CREDENTIALS", "CREDS", "COOKIE",
        "AUTHKEY", "APIKEY", "PRIVATEKEY", "PRIVKEY",
    }
)  # fmt: skip
# Word endings that make a name secret when glued to something else: GHTOKEN, PGPASSWORD.
_SECRET_ENDINGS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "PASSPHRASE", "AUTHKEY", "APIKEY")
# Words that are secret only as the last word: OPENAI_KEY, REGISTRY_AUTH (not KEY_ID, AUTH_URL).
_SECRET_LAST_WORDS = frozenset({"KEY", "AUTH"})
# ... unless the word before says it is public: SSH_PUBLIC_KEY.
_PUBLIC_WORDS = frozenset({"PUBLIC", "PUB"})
# A last word saying the value is *about* a secret, not the secret: PASSWORD_FILE, ACCESS_KEY_ID,
# TOKEN_URL, PASSWORD_COMMAND. Such a value (a path, an id, an endpoint) is left readable.
_ABOUT_A_SECRET = frozenset(
    {
        "FILE", "PATH", "DIR", "ID", "USER", "USERNAME", "NAME", "URL", "ENDPOINT", "HOST", "PORT",
        "TYPE", "LENGTH", "TTL", "EXPIRY", "EXPIRES", "ENABLED", "COMMAND", "CMD", "HELPER", "PROMPT",
    }
)  # fmt: skip
# Names that contain a secret word but are well-known non-secrets.
_NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})
# Names secret by prefix: 1Password CLI session tokens (OP_SESSION_<account>).
_SECRET_PREFIXES = ("OP_SESSION_",)


def declare_secret_names(names: Iterable[str]) -> None:
    """Register environment variable names whose values must never be shown."""
    _declared.update(names)


def add_secret_values(values: Iterable[str]) -> None:
    """Register secret values that no environment variable holds (e.g. Ansible Vault plaintexts):
    masked like every other secret from now on, in every form, for the rest of this process."""
    _added_values[0] = _added_values[0] | {str(value) for value in values}


def is_secret_name(name: str) -> bool:
    """Whether the value of the environment variable `name` is a secret."""
    return name in _declared or _looks_secret(name)


@lru_cache(maxsize=4096)
def _looks_secret(name: str) -> bool:
    upper = name.upper()
    if upper in _NOT_SECRET_NAMES:
        return False
    if upper.startswith(_SECRET_PREFIXES):
        return True
    words = [word for word in re.split(r"[^A-Z0-9]+", upper) if word]
    if not words or words[-1] in _ABOUT_A_SECRET:
        return False
    if any(word in _SECRET_WORDS or word.endswith(_SECRET_ENDINGS) for word in words):
        return True
    return words[-1] in _SECRET_LAST_WORDS and not (len(words) > 1 and words[-2] in _PUBLIC_WORDS)


# The password in a URL with credentials (`https://user:password@host/`), whatever the variable.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:([^\s/@]+)@")


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Current secret values, longest first so a value containing another is masked whole."""
    env = os.environ if environ is None else environ
    values = {value for name, value in env.items() if is_secret_name(name)} | _added_values[0]
    for value in env.values():
        if "://" in value:
            for match in _URL_PASSWORD.finditer(value):
                values.update({match.group(1), urllib.parse.unquote(match.group(1))})
    kept = (v for v in values if len(v) >= _MIN_SECRET_LENGTH and v.lower() not in _NOT_SECRET_VALUES)
    return sorted(kept, key=len, reverse=True)


# --- Which forms of a value are masked --------------------------------------------------------


def _base64_forms(raw: bytes) -> set[str]:
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms.update({whole, whole.rstrip("=")})
        # Inside a longer base64 text the value starts at byte offset 0, 1 or 2 of a 3-byte group;
        # the characters that depend only on the value's own bytes are the same for any neighbours.
        for offset in (1, 2):
            shifted = encode(b"\0" * offset + raw).decode().rstrip("=")
            stable = shifted[4 : 4 * ((offset + len(raw)) // 3)]
            if len(stable) >= _MIN_PARTIAL_FORM:
                forms.add(stable)
        aligned = whole[: 4 * (len(raw) // 3)]
        if len(aligned) >= _MIN_PARTIAL_FORM:
            forms.add(aligned)
    return forms


def _url_forms(raw: bytes) -> set[str]:
    forms = {urllib.parse.quote(raw, safe=""), urllib.parse.quote(raw), urllib.parse.quote_plus(raw)}
    return forms | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in forms}


def forms_of(value: str) -> set[str]:
    """Every form of `value` that is masked: itself, base64/base64url, URL-encoded, hex, JSON-escaped."""
    try:  # an environment value holds undecodable bytes as surrogate escapes: mask those bytes
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogatepass")
    forms = {value, raw.hex(), raw.hex().upper(), json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= _base64_forms(raw) | _url_forms(raw)
    if "\n" in value:  # a key file or certificate: each line may be printed on its own
        forms |= {line.strip() for line in value.splitlines() if len(line.strip()) >= 2 * _MIN_SECRET_LENGTH}
    return {form for form in forms if len(form) >= _MIN_SECRET_LENGTH}


def _form_pattern(form: str) -> str:
    """The regex of one form; a `%XX` escape in it matches in either case (`%2F`, `%2f`)."""
    return re.sub(
        r"%([0-9A-Fa-f])([0-9A-Fa-f])",
        lambda m: "%" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in m.groups()),
        re.escape(form),
    )


class _Matcher:
    """Every form of a set of secret values, compiled once."""

    def __init__(self, values: tuple[str, ...]) -> None:
        forms = sorted({form for value in values for form in forms_of(value)}, key=lambda f: (-len(f), f))
        self.pattern = re.compile("|".join(_form_pattern(form) for form in forms))
        self.longest = len(forms[0])
        self.by_first: dict[str, list[str]] = {}
        for form in forms:
            self.by_first.setdefault(form[0], []).append(form)

    def redact(self, text: str) -> str:
        return self.pattern.sub(MASK, text)

    def _grows_into_a_form(self, tail: str) -> bool:
        return any(len(form) > len(tail) and form.startswith(tail) for form in self.by_first.get(tail[0], ()))

    def partial_start(self, text: str) -> int:
        """Index where the longest end of `text` that is the beginning of a form starts (len(text): none)."""
        for start in range(max(0, len(text) - self.longest + 1), len(text)):
            if self._grows_into_a_form(text[start:]):
                return start
        return len(text)

    def safe_cut(self, text: str) -> int:
        """How much of `text` can be released now: nothing after the cut can be part of a secret
        that the next piece completes, and no whole secret is cut in two."""
        cut = self.partial_start(text)
        for match in reversed(list(self.pattern.finditer(text))):
            if match.start() < cut < match.end():
                cut = match.start()
        return cut


@lru_cache(maxsize=32)
def _matcher_for(values: tuple[str, ...]) -> _Matcher | None:
    return _Matcher(values) if values else None


def _matcher(environ: Mapping[str, str] | None = None) -> _Matcher | None:
    return _matcher_for(tuple(secret_values(environ)))


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every form of every secret value replaced by ***."""
    matcher = _matcher(environ)
    return matcher.redact(text) if matcher else text


def contains_secret(text: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether any form of any secret value occurs in `text`."""
    matcher = _matcher(environ)
    return bool(matcher and matcher.pattern.search(text))


def redact_data(data: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Redact every string inside a JSON-like structure (keys included)."""
    matcher = _matcher(environ)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return matcher.redact(node) if matcher else node
        if isinstance(node, Mapping):
            return {walk(k): walk(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        return node

    return walk(data)


class StreamRedactor:
    """Redaction of text that arrives in pieces: a secret split across two pieces is still masked.

    `feed()` returns what can be shown now and holds back the end that could still grow into a
    secret (at most as long as the longest form); `finish()` returns what was held, with a partial
    secret of 4 characters or more masked, so no piece of a secret is ever shown.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._held = ""

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def feed(self, text: str) -> str:
        data = self._held + text
        matcher = _matcher(self._environ)
        if matcher is None:
            self._held = ""
            return data
        cut = matcher.safe_cut(data)
        self._held = data[cut:]
        return matcher.redact(data[:cut])

    def finish(self) -> str:
        data, self._held = self._held, ""
        matcher = _matcher(self._environ)
        if matcher is None or not data:
            return data
        shown = matcher.redact(data)
        start = matcher.partial_start(shown)
        if len(shown) - start >= _MIN_SECRET_LENGTH:
            shown = shown[:start] + MASK
        return shown
