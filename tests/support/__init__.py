"""Helpers the test suites share: data factories, fake trainers, the tiny trained run, waiting.

Tests import helpers from here (`tests.support.<module>`), never from
conftest modules or from other test modules.
"""
