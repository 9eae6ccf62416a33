"""The modules under test beyond the contract: the declaration a team writes, the zoo, and how they are run.

``declare`` holds :class:`ModuleSpec` and the loading of a team's factories
(``--module``, entry points); ``zoo`` the suite's own declared modules;
``module_harness`` initialises, trains and evaluates any declared module under
jit. May import ``helpers``, ``reference``, ``numerics`` and ``core``.
"""
