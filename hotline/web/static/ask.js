// The agent panel's "ask a supervisor": an alert on the supervisors' wallboards for the
// call the agent is on (the server checks there is one), answered there by whisper or barge.
import { api, setText, t } from "./common.js";

export function wireAsk() {
  const button = document.getElementById("ask-supervisor");
  if (!button) return;
  button.addEventListener("click", async () => {
    const note = document.getElementById("ask-note").value;
    try {
      await api("POST", "/api/panel/ask", { note });
      document.getElementById("ask-note").value = "";
      setText("ask-result", t("ask.sent"));
    } catch (error) {
      setText("ask-result", t("ask.failed", { error: error.message }));
    }
  });
}
