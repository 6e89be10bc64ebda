"""A pickle reader that builds plain data and only the objects its caller allows.

An ordinary unpickler imports and calls whatever a file names, and builds in C
whatever the opcodes say, with no bound on the work: a crafted weights file can
run code, set any attribute of an object it was handed (BUILD), nest lists
until a recursive reader overflows, or share one list so often that walking it
takes hours. This reader interprets the opcodes itself (`pickletools.genops`
only parses them), so:

- it builds only None, bools, ints, floats, str, bytes, lists, tuples and
  dicts, plus what the caller's `find_global` returns and `persistent_load`
  makes;
- REDUCE calls only the `Constructor`s the caller handed out, and BUILD goes
  through the caller's `build` hook (refused when there is none);
- dict keys must be plain values (hashing a crafted tuple key can take
  exponential time), and no value read from the file is ever formatted into a
  message;
- the instructions, the nesting depth and the shared references (memo reads of
  a container) are bounded by `PickleLimits`.

Every failure is an `UnsafePickleError` (the file asks for something refused;
nothing from it was run) or a `MalformedPickleError` (it is not a well-formed
pickle, or it is over a limit).
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from engine.core.errors import StudioError

# The values a pickle may hold as themselves: no hook, no nesting.
ATOMS = (type(None), bool, int, float, str, bytes)
_PUSH_ARG = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
        "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    }
)  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


class UnsafePickleError(StudioError):
    """The pickle asks for something outside what its reader allows; nothing from it was run."""


class MalformedPickleError(StudioError):
    """The bytes are not a well-formed pickle of allowed values, or go over a `PickleLimits` bound."""


@dataclass(frozen=True)
class PickleLimits:
    """Bounds on what one pickle may make the reader do.

    Attributes:
        max_instructions: opcodes read before giving up. Defaults to 2,000,000
            (a state dict takes about 40 per tensor).
        max_depth: how deep containers may nest. Defaults to 32.
        max_shared_references: memo reads that return a container or a built
            object (real weights files have none). Defaults to 100,000.
    """

    max_instructions: int = 2_000_000
    max_depth: int = 32
    max_shared_references: int = 100_000


@dataclass(frozen=True)
class Constructor:
    """A function a pickle may call through REDUCE; `find_global` hands these out.

    Attributes:
        name: how messages call it ("torch._utils._rebuild_tensor_v2").
        function: called with the REDUCE arguments; raises a `StudioError` to refuse them.
    """

    name: str
    function: Callable[..., Any]


FindGlobal = Callable[[str, str], Any]
PersistentLoad = Callable[[Any], Any]
Build = Callable[[Any, Any], None]


def load(
    handle: BinaryIO,
    *,
    find_global: FindGlobal | None = None,
    persistent_load: PersistentLoad | None = None,
    build: Build | None = None,
    limits: PickleLimits | None = None,
) -> Any:
    """Read one pickle from `handle`, building only allowed objects.

    Args:
        handle: positioned at the pickle; left just after its STOP.
        find_global: `(module, name)` -> a `Constructor` or a marker value;
            raises `UnsafePickleError` to refuse. Defaults to None (no global allowed).
        persistent_load: a persistent id -> the object it stands for.
            Defaults to None (no persistent id allowed).
        build: `(object, state)` -> None, for BUILD; raises to refuse.
            Defaults to None (BUILD refused).
        limits: the bounds. Defaults to `PickleLimits()`.

    Returns:
        The unpickled value.

    Raises:
        UnsafePickleError: a refused global, call or BUILD.
        MalformedPickleError: anything else that is wrong with the bytes.
    """
    machine = _Machine(find_global, persistent_load, build, limits or PickleLimits())
    try:
        return machine.run(handle)
    except StudioError:
        raise
    except MemoryError:
        raise MalformedPickleError("the pickle asks for more memory than there is") from None
    except Exception as exc:  # what genops says about bad bytes, stack underflow, bad keys
        raise MalformedPickleError(f"not a well-formed pickle ({_why(exc)})") from exc


def _why(exc: Exception) -> str:
    # genops' ValueError messages describe the bytes, never values built from them.
    text = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
    return text[:160]


class _Machine:
    def __init__(
        self,
        find_global: FindGlobal | None,
        persistent_load: PersistentLoad | None,
        build: Build | None,
        limits: PickleLimits,
    ) -> None:
        self.find_global = find_global
        self.persistent_load = persistent_load
        self.build = build
        self.limits = limits
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        # id -> (object, depth): the object is kept so that its id is not reused.
        self.depths: dict[int, tuple[Any, int]] = {}
        self.globals: set[int] = set()
        self.shared = 0

    # -------------------------------------------------------------- helpers

    def depth(self, value: Any) -> int:
        if isinstance(value, ATOMS):
            return 0
        entry = self.depths.get(id(value))
        return entry[1] if entry is not None else 1

    def nest(self, container: Any, items: Any = ()) -> Any:
        """Record `container`'s depth after `items` went into it; refuse past the limit."""
        deepest = max((self.depth(item) for item in items), default=0) + 1
        if deepest > self.limits.max_depth:
            raise MalformedPickleError(
                f"containers nest deeper than {self.limits.max_depth} levels; a weights file "
                "is a flat mapping of names to tensors"
            )
        entry = self.depths.get(id(container))
        if entry is None or entry[1] < deepest:
            self.depths[id(container)] = (container, deepest)
        return container

    def pop_mark(self) -> list[Any]:
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self, kind: type, what: str) -> Any:
        target = self.stack[-1]
        if not isinstance(target, kind):
            raise MalformedPickleError(f"{what} on a {type(target).__name__}")
        return target

    def set_items(self, target: dict[Any, Any], items: list[Any]) -> None:
        if len(items) % 2:
            raise MalformedPickleError("a dict is given an odd number of keys and values")
        keys, values = items[0::2], items[1::2]
        for key in keys:
            if not isinstance(key, ATOMS):
                raise UnsafePickleError(
                    f"a dict key is a {type(key).__name__}; only plain keys (names, numbers) are read"
                )
        for key, value in zip(keys, values, strict=True):
            target[key] = value
        self.nest(target, values)

    def share(self, value: Any) -> Any:
        if not isinstance(value, ATOMS) and id(value) not in self.globals:
            self.shared += 1
            if self.shared > self.limits.max_shared_references:
                raise MalformedPickleError(
                    f"more than {self.limits.max_shared_references} shared references; "
                    "a weights file refers to each tensor once"
                )
        return value

    # -------------------------------------------------------------- the loop

    def run(self, handle: BinaryIO) -> Any:
        for count, (opcode, arg, _pos) in enumerate(pickletools.genops(handle), start=1):
            if count > self.limits.max_instructions:
                raise MalformedPickleError(
                    f"more than {self.limits.max_instructions} pickle instructions; "
                    "a weights file needs about 40 per tensor"
                )
            name = opcode.name
            if name == "STOP":
                if len(self.stack) != 1 or self.marks:
                    raise MalformedPickleError("the pickle ends with an unbalanced stack")
                return self.stack.pop()
            self.step(name, arg)
        raise MalformedPickleError("the pickle ends before its STOP")  # pragma: no cover

    def step(self, name: str, arg: Any) -> None:
        stack = self.stack
        if name in _PUSH_ARG:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in ("PROTO", "FRAME"):
            pass
        elif name == "MARK":
            self.marks.append(len(stack))
        elif name == "POP":
            if self.marks and self.marks[-1] == len(stack):
                self.marks.pop()
            else:
                stack.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            stack.append(self.share(stack[-1]))
        elif name == "EMPTY_LIST":
            stack.append(self.nest([]))
        elif name == "EMPTY_DICT":
            stack.append(self.nest({}))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "LIST":
            items = self.pop_mark()
            stack.append(self.nest(items, items))
        elif name == "DICT":
            target: dict[Any, Any] = self.nest({})
            self.set_items(target, self.pop_mark())
            stack.append(target)
        elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            self.tuple_of(name)
        elif name == "APPEND":
            item = stack.pop()
            target = self.top(list, "APPEND")
            target.append(item)
            self.nest(target, (item,))
        elif name == "APPENDS":
            items = self.pop_mark()
            target = self.top(list, "APPENDS")
            target.extend(items)
            self.nest(target, items)
        elif name == "SETITEM":
            value = stack.pop()
            key = stack.pop()
            self.set_items(self.top(dict, "SETITEM"), [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            self.set_items(self.top(dict, "SETITEMS"), items)
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            self.push_global(name, arg)
        elif name == "REDUCE":
            self.reduce()
        elif name == "BUILD":
            state = stack.pop()
            if self.build is None:
                raise UnsafePickleError("the pickle sets an object's attributes (BUILD); refusing it")
            self.build(stack[-1], state)
        elif name in ("PERSID", "BINPERSID"):
            if self.persistent_load is None:
                raise UnsafePickleError("the pickle refers to outside data (a persistent id)")
            pid = arg if name == "PERSID" else stack.pop()
            stack.append(self.persistent_load(pid))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in self.memo:
                raise MalformedPickleError("the pickle reads a memo entry it never wrote")
            stack.append(self.share(self.memo[int(arg)]))
        else:
            raise UnsafePickleError(f"the pickle instruction {name} is not allowed in a weights file")

    def tuple_of(self, name: str) -> None:
        if name == "TUPLE":
            items = self.pop_mark()
        else:
            n = int(name[-1])
            if len(self.stack) < n:
                raise MalformedPickleError(f"{name} on a stack of {len(self.stack)}")
            items = self.stack[-n:]
            del self.stack[-n:]
        self.stack.append(self.nest(tuple(items), items) if items else ())

    def push_global(self, name: str, arg: Any) -> None:
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
        else:
            attr, module = self.stack.pop(), self.stack.pop()
            if not isinstance(module, str) or not isinstance(attr, str):
                raise MalformedPickleError("STACK_GLOBAL names are not strings")
        if self.find_global is None:
            raise UnsafePickleError(
                f"the pickle asks for {module[:80]}.{attr[:80]}, and no global is allowed here"
            )
        value = self.find_global(module, attr)
        self.globals.add(id(value))
        self.depths[id(value)] = (value, 1)
        self.stack.append(value)

    def reduce(self) -> None:
        args = self.stack.pop()
        function = self.stack.pop()
        if not isinstance(function, Constructor):
            raise UnsafePickleError(
                f"the pickle calls a {type(function).__name__}, which is not an allowed constructor"
            )
        if not isinstance(args, tuple):
            raise MalformedPickleError(f"{function.name} is called with a {type(args).__name__}")
        try:
            result = function.function(*args)
        except StudioError:
            raise
        except Exception as exc:  # wrong argument count and the like: say which call
            raise MalformedPickleError(
                f"{function.name} could not be called ({type(exc).__name__})"
            ) from exc
        self.stack.append(self.nest(result) if not isinstance(result, ATOMS) else result)
