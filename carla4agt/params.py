"""Click parameter types for values with structure (weathers, sizes, shards)."""

from __future__ import annotations

import math
from typing import Any

import click

from carla4agt_data.errors import UserError


class _Parsed(click.ParamType):
    """A parameter parsed by a library function; its UserError becomes a usage error."""

    name = "value"

    def parse(self, value: str) -> Any:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except UserError as exc:
            self.fail(str(exc), param, ctx)


class WeathersType(_Parsed):
    """``all``, or preset names and YAML paths separated by commas."""

    name = "WEATHERS"

    def parse(self, value: str):
        from generator.weather import resolve_weathers

        return tuple(resolve_weathers(value))


class SizeType(_Parsed):
    name = "WxH"

    def parse(self, value: str):
        from generator.runner import parse_size

        return parse_size(value)


class ServerType(_Parsed):
    name = "HOST:PORT"

    def parse(self, value: str):
        from generator.runner import parse_server

        return parse_server(value)


class ShardType(_Parsed):
    name = "I/N"

    def parse(self, value: str):
        from generator.runner import parse_shard

        return parse_shard(value)


class FiniteFloatRange(click.FloatRange):
    """A float range that also refuses nan (which every comparison lets through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
