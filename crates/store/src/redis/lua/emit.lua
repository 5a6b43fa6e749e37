-- stream::send, and events of writes made by custom providers: numbers and publishes an event
-- that changes nothing stored. ARGV[8] the frame's `event` object as JSON text.
-- Returns {seq, timestamp, epoch, body}.
return commit(ARGV[8], 'kept')
