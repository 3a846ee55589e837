/**
 * Stand-in for your model call. Replace it with your LLM client; pass `signal` on so a superseded
 * run stops paying for tokens.
 */
export async function answer(question: string, signal: AbortSignal): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, 50);
    signal.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason as Error); }, { once: true });
  });
  return `you said: ${question}`;
}
