"""The IVR: flows (:mod:`.flow`), the calendar (:mod:`.calendar`), the runner (:mod:`.runner`)."""
