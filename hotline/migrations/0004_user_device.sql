-- A user's own phone device (e.g. PJSIP/9001): the wallboard's listen, whisper and barge
-- ring it (Originate Channel=<device> Application=ChanSpy). Null: the user has none.

alter table users add column device text check (device <> '' and device !~ '[\r\n]');
