// MathJax 3 configuration for pymdownx.arithmatex (generic mode). MathJax itself is the local
// tex-svg-full.js (every TeX extension built in, so nothing is fetched at view time).
window.MathJax = window.MathJax || {
  tex: { inlineMath: [["\\(", "\\)"], ["$", "$"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true },
  options: { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-RenderedHTMLCommon" },
  loader: { load: [] },
};
// Re-typeset after material's instant navigation swaps the page content.
if (typeof document$ !== "undefined") {
  document$.subscribe(function () {
    if (window.MathJax && MathJax.typesetPromise) { MathJax.typesetPromise(); }
  });
}
