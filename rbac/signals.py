"""What rbac tells the apps above it, which it may not import. Sent inside the changing transaction, so a
receiver's work commits or rolls back with the change (and a receiver's error rolls it back).

Both are sent with ``organization``, ``user_id``, ``actor`` and ``action`` (the change's audit action). identity
revokes the API keys the person created in the organization on either (docs/decisions/0003): a key acts with its
creator's current grants, so one left alive would wake up, with the new role's grants, if the person came back.
"""

from django.dispatch import Signal

#: A membership ended: the member left, was removed or was deactivated.
membership_ended = Signal()
#: A membership was made, or made again for someone who had one before.
membership_started = Signal()
