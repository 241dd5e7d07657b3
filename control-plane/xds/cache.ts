import type { Snapshot } from './snapshot.js';

/** The snapshot every node gets unless it has its own. */
export const ALL_NODES = '*';

type Watcher = (snapshot: Snapshot) => void;

/**
 * Snapshots by node id (go-control-plane's SnapshotCache). Setting a snapshot wakes the
 * streams of that node (or of every node for ALL_NODES); each stream then sends only the
 * resource types whose version changed.
 */
export class SnapshotCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly watchers = new Map<string, Set<Watcher>>();

  set(node: string, snapshot: Snapshot): void {
    const prev = this.snapshots.get(node);
    if (prev && sameVersions(prev, snapshot)) return;
    this.snapshots.set(node, snapshot);
    for (const [watched, set] of this.watchers) {
      if (node === ALL_NODES ? !this.snapshots.has(watched) || watched === ALL_NODES : watched === node) {
        for (const w of set) w(snapshot);
      }
    }
  }

  get(node: string): Snapshot | undefined {
    return this.snapshots.get(node) ?? this.snapshots.get(ALL_NODES);
  }

  watch(node: string, w: Watcher): () => void {
    let set = this.watchers.get(node);
    if (!set) {
      set = new Set();
      this.watchers.set(node, set);
    }
    set.add(w);
    return () => {
      set!.delete(w);
      if (set!.size === 0) this.watchers.delete(node);
    };
  }
}

function sameVersions(a: Snapshot, b: Snapshot): boolean {
  return Object.keys(a.versions).every(
    (t) => a.versions[t as keyof Snapshot['versions']] === b.versions[t as keyof Snapshot['versions']],
  );
}
