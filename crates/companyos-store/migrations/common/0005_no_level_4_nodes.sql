-- Interior nodes of level 4 are no longer stored: they are rebuilt from the (at most 128) leaf
-- hashes of the leaf bundles, and their rows, one per 16 leaves at each log's place in the
-- node index, were a third of the pages a small group commit wrote. Stored levels are now
-- 8, 12, 16, ... (companyos_core::ledger_store::is_stored_level).
DELETE FROM ledger_nodes WHERE level = 4
