// MathJax 3 configuration for pymdownx.arithmatex (generic mode) and notebook Markdown cells. MathJax
// itself is the local tex-svg-full.js (every TeX extension built in, so nothing is fetched at view time).
// Only those elements are typeset, so a `$` elsewhere in the prose stays a dollar sign.
var WB_MATH = [".arithmatex", ".jp-RenderedMarkdown"];
window.MathJax = window.MathJax || {
  tex: { inlineMath: [["\\(", "\\)"], ["$", "$"]], displayMath: [["\\[", "\\]"], ["$$", "$$"]],
         processEscapes: true, processEnvironments: true },
  startup: { elements: WB_MATH },
  loader: { load: [] },
};
