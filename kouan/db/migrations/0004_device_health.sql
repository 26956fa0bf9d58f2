-- Device health: how far each device's seq is stored without a gap, and since when
-- a gap above that point has been open.
-- depends: 0002_alerts_decisions_audit

-- Every seq from 1 to contiguous_seq is stored; last_seq above it means a gap.
ALTER TABLE devices ADD COLUMN contiguous_seq bigint NOT NULL DEFAULT 0;
-- When the current gap was first seen; null while there is none. A gap raises
-- seq_gap only once it has stayed open for the grace period, because events
-- redelivered after a collector restart may arrive out of order.
ALTER TABLE devices ADD COLUMN gap_since timestamptz;
