//! Time as the edges read it: the wall clock (the pure core takes time
//! from record timestamps instead) and the process's own CPU time.

/// Wall-clock milliseconds since the Unix epoch. Only edges call this; the
/// pure core takes time from record timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// CPU time this process has used, every thread, user and system, from
/// `/proc/self/stat` (USER_HZ ticks, 100 per second on Linux); zero where
/// that file is missing. For tools that print their own cost.
pub fn process_cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at "state".
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime: fields 14 and 15 of the line, 11 and 12 counted from "state".
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
