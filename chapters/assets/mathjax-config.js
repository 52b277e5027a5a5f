// MathJax 2 reads this object when it loads: typeset only the math that the Markdown marked
// (pymdownx.arithmatex wraps it in \( \) or \[ \] inside elements of class "arithmatex"), with
// the web fonts published beside it and no status messages in the corner of the page.
window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  tex2jax: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    ignoreClass: ".*|",
    processClass: "arithmatex",
  },
  // The STIX web fonts published beside MathJax. MathJax names a placeholder font at
  // url(about:blank), which browsers refuse to fetch; a local() name that matches nothing does
  // the same job without a failed request.
  "HTML-CSS": {
    availableFonts: [],
    preferredFont: null,
    webFont: "STIX-Web",
    imageFont: null,
    styles: { "@font-face": { "font-family": "MathJax_Blank", src: "local('MathJax_Blank')" } },
  },
  messageStyle: "none",
};
