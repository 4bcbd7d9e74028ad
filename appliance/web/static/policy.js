// Meta's messaging policy for a human reply, as the composer shows it. Mirrors
// appliance/outbox/policy.py and appliance/web/pages/views.py composer_state; the server
// decides again when the reply is sent (time passes), and its refusal is shown as is.

const HOUR = 3600 * 1000;
const WINDOW = 24 * HOUR;
const HUMAN_AGENT = 7 * 24 * HOUR;
const NAMES = { messenger: "Messenger", instagram: "Instagram", whatsapp: "WhatsApp" };

export function durationText(ms) {
  let minutes = Math.max(Math.floor(ms / 60000), 0);
  const days = Math.floor(minutes / 1440);
  minutes -= days * 1440;
  const hours = Math.floor(minutes / 60);
  minutes -= hours * 60;
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  return `${minutes} min`;
}

/** {mode: free|human_agent|template|blocked, notice} for a reply now. */
export function composerState(channel, channelStatus, lastInbound, now = Date.now()) {
  if (channelStatus !== "active") {
    const state = channelStatus === "needs_reauth" ? "needs to be reconnected" : "is disconnected";
    return { mode: "blocked", notice: `This ${NAMES[channel]} channel ${state}: nothing can be sent until an admin reconnects it in Settings → Channels.` };
  }
  const last = lastInbound ? Date.parse(lastInbound) : null;
  const age = last === null ? null : now - last;
  if (age !== null && age < WINDOW) {
    return { mode: "free", notice: `Reply window open: ${durationText(last + WINDOW - now)} left.` };
  }
  if (channel === "whatsapp") {
    return { mode: "template", notice: "More than 24 hours since the contact's last message: WhatsApp allows only an approved template until they write again." };
  }
  if (age !== null && age < HUMAN_AGENT) {
    return { mode: "human_agent", notice: `The 24-hour window has closed. A person may still reply for ${durationText(last + HUMAN_AGENT - now)}: your reply is sent with Meta's HUMAN_AGENT tag. Automated messages cannot be sent.` };
  }
  if (last === null) {
    return { mode: "blocked", notice: "This contact has not sent you a direct message yet: Meta allows no message until they do." };
  }
  return { mode: "blocked", notice: "The contact has not written in the last 7 days: Meta allows no message until they write again." };
}
