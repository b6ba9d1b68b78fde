"""Rendering the compiler's bounded statements for engines other than DuckDB, one module per
dialect. Each turns the generated statements into sqlglot trees, rewrites every construct whose
meaning differs between the engines into one with DuckDB's meaning (or refuses it), and
generates with sqlglot's `ErrorLevel.RAISE`, so nothing is dropped silently."""

from sandbox.compiler.dialects.spark import SparkStatements, check_spark, render_spark

__all__ = ["SparkStatements", "check_spark", "render_spark"]
