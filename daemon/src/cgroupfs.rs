//! Where the cgroup hierarchies are mounted (from /proc/self/mountinfo).
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct CgroupMounts {
    /// cgroup2 mount point (`/sys/fs/cgroup/unified` on hybrid hosts, `/sys/fs/cgroup` on v2).
    pub unified: Option<PathBuf>,
    /// v1 freezer hierarchy, if any.
    pub freezer_v1: Option<PathBuf>,
}

impl CgroupMounts {
    pub fn detect() -> Self {
        std::fs::read_to_string("/proc/self/mountinfo").map(|t| Self::parse(&t)).unwrap_or_default()
    }

    /// mountinfo: `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`
    pub fn parse(mountinfo: &str) -> Self {
        let mut m = CgroupMounts::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let fields: Vec<&str> = left.split_whitespace().collect();
            let rest: Vec<&str> = right.split_whitespace().collect();
            let (Some(mountpoint), Some(fstype)) = (fields.get(4), rest.first()) else { continue };
            let superopts = rest.get(2).copied().unwrap_or("");
            match *fstype {
                "cgroup2" if m.unified.is_none() => m.unified = Some(PathBuf::from(mountpoint)),
                "cgroup" if superopts.split(',').any(|o| o == "freezer") => {
                    m.freezer_v1.get_or_insert_with(|| PathBuf::from(mountpoint));
                }
                _ => {}
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_layout() {
        let mi = "30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755\n\
35 30 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
40 30 0:36 / /sys/fs/cgroup/freezer rw,relatime shared:9 - cgroup cgroup rw,freezer\n\
41 30 0:37 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let m = CgroupMounts::parse(mi);
        assert_eq!(m.unified.unwrap(), PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m.freezer_v1.unwrap(), PathBuf::from("/sys/fs/cgroup/freezer"));
    }

    #[test]
    fn pure_v2() {
        let m = CgroupMounts::parse("35 1 0:31 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(m.unified.unwrap(), PathBuf::from("/sys/fs/cgroup"));
        assert!(m.freezer_v1.is_none());
    }
}
