"""Golden records: the numbers and dropout masks of a verified release, written and compared.

``records`` (files, names, where they live), ``contract`` (the contract's
grid), ``zoo`` (dropout masks, batch statistics, declared modules),
``references`` (which record a golden property compares against). May import
``modules`` and everything below it.
"""
