"""No admin pages: campaign rows live in each organization's schema, and the operators' admin works in the public
schema (as for every data-plane app). Operators use the API as a member of the organization."""
