"""The password hasher: Argon2id with parameters measured on the deployment's machine (decision 0015).

Django's own Argon2 hasher asks for 100 MiB and 8 lanes per hash; on a 2-core server with 16 request threads that
is 1.6 GiB when a burst of sign-ins arrives together, and lanes beyond the cores buy nothing. These parameters
are OWASP's 46 MiB profile with twice its passes (t=2): ~140 ms per hash on the reference machine against ~290 ms
for PBKDF2-SHA256 at Django's 1,000,000 iterations (``python bench/passwords.py`` prints the candidates).

Hashes made with other parameters, or by PBKDF2 (the previous default), are rehashed with these at the next
successful sign-in: Django's ``check_password`` calls the setter when the hasher is not the first of
``PASSWORD_HASHERS`` or when ``must_update`` sees other parameters.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Argon2id (Django's ``argon2`` algorithm: the stored hash names its type and parameters)."""

    time_cost = 2
    memory_cost = 47104  # KiB: 46 MiB
    parallelism = 1
