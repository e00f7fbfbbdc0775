"""Events: what a scenario's tracked objects did (stored by the inbox from `events`), paged and counted."""
