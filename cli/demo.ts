export async function runDemo(_opts: { keep: boolean }): Promise<void> {
  throw new Error('the demo is not built yet');
}
