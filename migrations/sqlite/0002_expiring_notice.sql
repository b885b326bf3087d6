-- The end time an `app.expiring` notice was sent for, so each end gets one notice; an
-- extension moves the end and makes the app due for a new one.
ALTER TABLE apps ADD COLUMN expiring_notice_for BIGINT;
