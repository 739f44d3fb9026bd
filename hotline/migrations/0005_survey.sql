-- The post-call satisfaction survey (满意度调查): the IVR's survey flow stores the
-- caller's 1-5 score on the call row and on the call's ticket, once: a second
-- answer for the same call changes nothing (hotline.ivr.service.record_survey).
alter table calls
    add column survey_score smallint check (survey_score between 1 and 5),
    add column survey_at timestamptz,
    add check ((survey_score is null) = (survey_at is null));
alter table tickets
    add column survey_score smallint check (survey_score between 1 and 5),
    add column survey_at timestamptz;
