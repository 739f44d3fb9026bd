-- Handle time: the wrap-up after an answered call, for AHT (talk + wrap-up).
--
-- Written by the outbox's ``wrap_up`` record when the answering agent's wrap-up
-- ends (WrapUpEnded, on the engine's clock). Talk needs no column: it runs from
-- answered_at to talk_ended_at (ended_at when the talk's end is unknown).
-- Both stay null until the wrap-up has ended; a queue without wrap-up gives 0.

alter table calls
    add column wrap_up_seconds   double precision check (wrap_up_seconds >= 0),
    add column wrap_up_ended_at  timestamptz;
