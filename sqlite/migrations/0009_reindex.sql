-- reindex lists the resource types whose blind-index tokens predate a
-- change in what is indexed; the server retokens their current versions at
-- start (vault.Service.Reindex) and then removes the type.
CREATE TABLE reindex (
	type TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;

-- Reference parameters gained the :identifier modifier, and
-- CareTeam.participant, Encounter.participant and EpisodeOfCare.care-manager
-- became searchable: the types the access layer reads care teams from.
INSERT INTO reindex (type) VALUES ('CareTeam'), ('Encounter'), ('EpisodeOfCare');
