-- Several sites (issue 14): agent ids are unique across the centre.
--
-- users, agent_states and agent_state_log are keyed by agent id, so two sites
-- configuring the same [[agents]] id would share one persisted state (a login
-- at one site logging the agent in at the other after a restart) and one line
-- in the reports. At start every instance claims its configured agent ids for
-- its [service] pbx_id here (hotline.store.sites): an id another site claims
-- refuses the start (exit 2), like a ticket letter (table sites). A site's
-- claims are the agents it last started with: ids it no longer configures are
-- released at its next start, so an agent moves from one site to another by
-- removing it from the first site's configuration, then adding it to the
-- second's.
--
-- Devices are not claimed: a device (PJSIP/2001, Local/2001@agents) names a
-- channel on its own PBX, so the same text at two sites names two phones, and
-- no record is keyed by it.

create table site_agents (
    agent_id      text primary key check (agent_id <> ''),
    pbx_id        text not null,
    claimed_at    timestamptz not null default now(),
    last_seen_at  timestamptz not null default now()
);
create index site_agents_site on site_agents (pbx_id);
