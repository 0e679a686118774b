// Copy-to-clipboard for the raw key shown once. No inline scripts: the CSP allows
// only files from this origin.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.dataset.copy);
  if (!field) return;
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {
    field.select();
    document.execCommand("copy");
  }
  const label = button.textContent;
  button.textContent = button.dataset.copied || "Copied";
  setTimeout(() => { button.textContent = label; }, 2000);
});

// Forms that undo something ask first (the text comes translated in data-confirm).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
