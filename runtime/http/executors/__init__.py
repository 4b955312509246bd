"""Executors: how a component is entered for one request (see runtime.core.contract, Executors).

Each module has an ExecutorProvider that claims components by their exports and the trigger's
``executor`` setting; runtime/runtime.py lists them in the order they are asked.
"""
