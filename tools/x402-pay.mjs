// Pays an x402 resource with the x402 project's own client (x402-fetch, viem), unmodified:
// `node tools/x402-pay.mjs <url> <private key>`. Prints the second answer as JSON:
// {status, body, paymentResponse (decoded X-PAYMENT-RESPONSE)}. Used by tests/it/x402.rs.
import { wrapFetchWithPayment, decodeXPaymentResponse } from "x402-fetch";
import { createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";

const [url, key] = process.argv.slice(2);
const wallet = createWalletClient({ account: privateKeyToAccount(key), chain: baseSepolia, transport: http() });
// The default cap is 0.1 USDC; an app deployment costs more.
const pay = wrapFetchWithPayment(fetch, wallet, 10n ** 12n);
try {
  const answer = await pay(url, { method: "GET" });
  const header = answer.headers.get("x-payment-response");
  const body = await answer.json().catch(() => null);
  console.log(JSON.stringify({ status: answer.status, body, paymentResponse: header ? decodeXPaymentResponse(header) : null }));
} catch (e) {
  const cause = e && e.cause ? `: ${e.cause.message || e.cause}` : "";
  console.log(JSON.stringify({ error: `${e && e.message ? e.message : e}${cause}` }));
}
