-- Preference profiles (issue 5, P12): a subject's service-log events are found by their
-- pseudonym, to delete them when the subject withdraws the purpose they were kept for.
CREATE INDEX service_events_pseudonym ON service_events (pseudonym);
